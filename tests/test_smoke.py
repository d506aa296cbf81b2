import paymux
import paymux._core as core


def test_extension_module_loads_and_matches_package_version():
    assert core.__version__ == paymux.__version__
