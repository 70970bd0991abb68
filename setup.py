"""Package discovery lives here because one package is mapped from another folder:
models/ (the shipped weights) installs as the data package `shiren_models`, so a wheel carries them."""

from setuptools import find_namespace_packages, setup

setup(
    # Namespace discovery also takes data-only folders (db/migrations, core/data, tui/*.tcss).
    packages=find_namespace_packages(include=["core*", "training*", "db*", "bot*", "tui*"],
                                     exclude=["*.__pycache__"]) + ["shiren_models"],
    package_dir={"shiren_models": "models"},
)
