from setuptools import find_packages, setup

with open("README.rst", encoding="utf-8") as f:
    long_description = f.read()

setup(
    name="continuity",
    version="0.1.0",
    description="Fabric tasks that keep master a candidate release: build, check, merge, push, deploy.",
    long_description=long_description,
    long_description_content_type="text/x-rst",
    license="BSD-3-Clause",
    packages=find_packages(include=["continuity", "continuity.*"]),
    python_requires=">=3.9",
    install_requires=[
        "fabric>=3.2,<4",
        "invoke>=2.2,<3",
        "docker>=7",
    ],
    extras_require={
        # `make test` runs the linters too. ruff and mypy add checks in minor
        # releases: the upper bounds keep a new release from failing a build
        # nobody changed. mypy 2.4 runs on Python 3.10 and later; the lint runs
        # on one interpreter (make test's, tox -e lint), the tests on all.
        "test": [
            "pytest>=7",
            "pytest-xdist>=3.2",
            "aiosmtpd>=1.4",
            "ruff>=0.17,<0.18",
            "mypy>=2.4,<2.5; python_version >= '3.10'",
            "import-linter>=2.1,<3; python_version >= '3.10'",
        ],
        "docs": ["sphinx>=7"],
    },
    classifiers=[
        "License :: OSI Approved :: BSD License",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.9",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Software Development :: Build Tools",
    ],
)
