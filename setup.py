"""Package discovery lives here because one package is mapped from another folder:
models/ (the shipped weights) installs as the data package `shiren_models`, so a wheel carries them."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["core*", "training*", "db*", "bot*", "tui*"]) + ["shiren_models"],
    package_dir={"shiren_models": "models"},
)
