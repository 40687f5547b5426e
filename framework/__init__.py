"""ragtune: teach a language model your company's documents.

Example:
    >>> import framework
    >>> project = framework.load("ragtune.yaml")             # doctest: +SKIP
    >>> project.ingest(); project.synthesize(); project.finetune()   # doctest: +SKIP
    >>> print(project.ask("How many leave days?", mode="combined").text)  # doctest: +SKIP
"""

from framework.config import Config, ConfigError, load_config
from framework.project import Project, load
from framework.records import Answer, Chunk, Document, Principal, Source

__all__ = ["Answer", "Chunk", "Config", "ConfigError", "Document", "Principal", "Project", "Source", "load",
           "load_config"]
__version__ = "0.1.0"
