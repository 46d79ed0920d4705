pytest_plugins = ["devservers_sdk.localcluster.pytest_plugin", "tests.platform_fixture"]
