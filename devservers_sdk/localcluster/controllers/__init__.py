"""The emulator's controllers and scheduler (the real control plane runs kube-controller-manager)."""
