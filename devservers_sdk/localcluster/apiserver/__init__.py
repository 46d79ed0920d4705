"""The Kubernetes API emulator: storage, admission, schemas, discovery and the HTTP server."""
