//! knote-bench: the benches comparing knote with tokio and mio live in `benches/`.
