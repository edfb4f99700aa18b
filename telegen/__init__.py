"""telegen: realistic OTLP templates, replayed at very high rates.

    >>> import telegen
    >>> templates = telegen.generate(telegen.GeneratorConfig.load("examples/generator-config.yaml"))
    >>> templates.save("./generated", json=True)
    >>> again = telegen.load("./generated")
    >>> telegen.import_captures(["capture/"], "./imported")   # recorded or exported OTLP -> templates
"""
import os

# telegen reports every export error itself, one line per kind at most every
# few seconds. grpc's C core would also print its own, once per connection
# attempt (a TLS handshake against a plaintext port floods the terminal with
# `ssl_transport_security.cc ... WRONG_VERSION_NUMBER`). Set GRPC_VERBOSITY
# (DEBUG, INFO, ERROR) to see them; grpc reads it when first imported.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

# Where the submodules come from: here, except for a clone never built that is
# first on sys.path (`python -m pytest` inside it) ahead of an installed
# telegen; then the installed package's, compiled ones included (_checkout.py).
from ._checkout import package_path as __path__  # noqa: F401 - first: every import below uses it
from ._version import __version__
from .errors import ConfigError, OutputError, TelegenError, TemplateFileError
from .fleet import Fleet, FleetReport
from .generate import generate
from .generate.config import GeneratorConfig
from .importing import CaptureError, import_captures
from .send.config import SenderConfig
from .send.report import SendReport
from .send.sender import Sender
from .sink import Sink
from .templates import TemplateSet, load, read_records

__all__ = [
    "__version__",
    "CaptureError",
    "ConfigError",
    "Fleet",
    "FleetReport",
    "GeneratorConfig",
    "OutputError",
    "SendReport",
    "Sender",
    "SenderConfig",
    "Sink",
    "TelegenError",
    "TemplateFileError",
    "TemplateSet",
    "generate",
    "import_captures",
    "load",
    "read_records",
]
