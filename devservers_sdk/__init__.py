"""devservers SDK: personal PyTorch development servers on Kubernetes."""
