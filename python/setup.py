"""Builds and installs the tandem Python package from a checkout, offline.

    python3 -m venv --system-site-packages .venv
    .venv/bin/pip install --no-build-isolation --no-index ./python

The extension module is built by the project's CMake build: the build directory in
$TANDEM_BUILD_DIR, else <checkout>/build (configured here, for this interpreter, when it does not
exist yet). Only the `tandem_python` target is built; JOBS sets the parallelism (default 2).
"""

import os
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent


def _version() -> str:
    m = re.search(r"project\(tandem VERSION ([0-9.]+)", (ROOT / "CMakeLists.txt").read_text())
    return m.group(1) if m else "0.0.0"


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = pathlib.Path(os.environ.get("TANDEM_BUILD_DIR", ROOT / "build")).resolve()
        if not (build_dir / "CMakeCache.txt").exists():
            subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build_dir), "-G", "Ninja",
                            "-DCMAKE_BUILD_TYPE=Release", f"-DPython3_EXECUTABLE={sys.executable}"], check=True)
        subprocess.run(["cmake", "--build", str(build_dir), "--target", "tandem_python", "-j",
                        os.environ.get("JOBS", "2")], check=True)
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        built = build_dir / "python" / "tandem" / f"_tandem{suffix}"
        if not built.exists():
            found = sorted(p.name for p in (build_dir / "python" / "tandem").glob("_tandem*"))
            raise RuntimeError(f"{built} was not built (found {found}): the build directory was configured "
                               f"for another Python; set TANDEM_BUILD_DIR to a fresh directory")
        dest = pathlib.Path(self.get_ext_fullpath(ext.name))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built, dest)


setup(
    name="tandem",
    version=_version(),
    description="Python bindings of tandem, an ONNX inference engine",
    packages=["tandem"],
    package_dir={"tandem": "tandem"},
    package_data={"tandem": ["*.pyi", "py.typed"]},
    ext_modules=[Extension("tandem._tandem", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
    python_requires=">=3.9",
    install_requires=["numpy"],
    zip_safe=False,
)
