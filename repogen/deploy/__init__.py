"""From one machine to a cluster: rolling model updates, a bounded load test across replicas, and
Kubernetes / KServe manifests rendered from templates users can override (docs/scale-out.md)."""
