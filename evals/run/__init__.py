"""Running a task: the runner (cache, concurrency, retries, budget), the store, manifests, progress, latency."""
