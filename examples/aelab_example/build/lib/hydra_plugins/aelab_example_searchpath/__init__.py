"""Hydra finds this package's configs (``model=my_ae``, ``callbacks=with_code_norm``) through this plugin: Hydra
discovers search-path plugins in the ``hydra_plugins`` namespace of every installed package."""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class AelabExampleSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="aelab-example", path="pkg://aelab_example.conf")
