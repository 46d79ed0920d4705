"""What every namespace gets from the controllers, on both control planes."""

from __future__ import annotations

from kubernetes import client, config

from devservers_sdk.localcluster.pytest_plugin import wait_for


def test_a_new_namespace_gets_the_cluster_ca_and_a_default_service_account(kubeconfig: str, namespace: str) -> None:
    api_client = config.new_client_from_config(kubeconfig)
    core = client.CoreV1Api(api_client)
    try:
        config_map = wait_for(lambda: next((c for c in core.list_namespaced_config_map(namespace).items
                                            if c.metadata.name == "kube-root-ca.crt"), None),
                              timeout=60, message="kube-root-ca.crt published into the namespace")
        # It is the CA that verifies this API server (what the kubeconfig trusts).
        ca_file = api_client.configuration.ssl_ca_cert
        with open(ca_file, "rb") as handle:
            trusted = handle.read().decode()
        assert config_map.data["ca.crt"].strip() in trusted or trusted.strip() in config_map.data["ca.crt"]
        wait_for(lambda: any(sa.metadata.name == "default"
                             for sa in core.list_namespaced_service_account(namespace).items),
                 timeout=60, message="the default ServiceAccount")
    finally:
        api_client.close()
