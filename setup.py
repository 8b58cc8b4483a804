"""Maps the top-level folders core/, plugins/, pipelines/ to polyvae.core, polyvae.plugins,
polyvae.pipelines (every sub-folder with an __init__.py), and api/ to the ``polyvae`` package
itself (the public API), so no top-level ``core`` lands in site-packages. Metadata lives in
pyproject.toml."""
import os

from setuptools import setup


def mapped_packages() -> dict[str, str]:
    here = os.path.dirname(os.path.abspath(__file__))
    packages = {"polyvae": "api"}
    for top in ("core", "plugins", "pipelines"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(here, top)):
            dirnames[:] = [d for d in dirnames if not d.startswith((".", "__"))]
            if "__init__.py" in filenames:
                rel = os.path.relpath(dirpath, here)
                packages["polyvae." + rel.replace(os.sep, ".")] = rel
    return packages


PACKAGES = mapped_packages()
setup(packages=list(PACKAGES), package_dir=PACKAGES,
      package_data={name: ["*.json", "*.html", "*.js", "*.css"] for name in PACKAGES})
