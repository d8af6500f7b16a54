"""Builds RAMNET's C extension through build_ext.py; everything else is in pyproject.toml.

The extension is optional: on a machine without a C compiler the install still succeeds, and
RAMNET runs on its numba kernels (``ramnet doctor`` says so).
"""

import os
import sys

from setuptools import setup

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from build_ext import ffibuilder

extension = ffibuilder.distutils_extension(tmpdir="build/cffi")
extension.optional = True

setup(ext_modules=[extension])
