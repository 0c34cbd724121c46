"""The wheel leaves out the tests that live beside the modules (``*_test.py``, ``conftest.py``)
and the toy-dataset builder only tests and benchmarks use; everything else is in pyproject.toml."""

from setuptools import setup
from setuptools.command.build_py import build_py

_SOURCE_ONLY = {"conftest", "toydata"}


class BuildPyWithoutTests(build_py):
    def find_package_modules(self, package: str, package_dir: str) -> list[tuple[str, str, str]]:
        return [(pkg, module, path)
                for pkg, module, path in super().find_package_modules(package, package_dir)
                if not module.endswith("_test") and module not in _SOURCE_ONLY]


setup(cmdclass={"build_py": BuildPyWithoutTests})
