"""Keep the API key out of the HTTP library's own debug output.

`http.client`'s wire debugging (`HTTPConnection.debuglevel = 1`, the usual recipe
for "show me the requests") prints every request, `Authorization` header and all,
to stdout. The connections the client opens ignore that switch; everything else
the connector logs names paths only, never headers.
"""

from typing import Any

import requests
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection


class _QuietHTTPConnection(HTTPConnection):
    debuglevel = 0

    def set_debuglevel(self, level: int) -> None:
        pass


class _QuietHTTPSConnection(HTTPSConnection):
    debuglevel = 0

    def set_debuglevel(self, level: int) -> None:
        pass


class _QuietHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _QuietHTTPConnection


class _QuietHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _QuietHTTPSConnection


QUIET_POOLS = {"http": _QuietHTTPPool, "https": _QuietHTTPSPool}


class QuietAdapter(requests.adapters.HTTPAdapter):
    """An HTTPAdapter whose connections never print what they send."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = QUIET_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> urllib3.PoolManager:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = QUIET_POOLS
        return manager
