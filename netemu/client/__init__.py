"""The async API client (``ApiClient``) and the list+watch cache (``Informer``).

Every component talks to the API server through these: ``ApiClient.from_kubeconfig(path)`` or
``ApiClient(server, token)``, resources addressed by ``netemu.api.kinds.ResourceType``.
"""

from netemu.client.informer import Informer
from netemu.client.rest import ApiClient, ObjectList

__all__ = ["ApiClient", "Informer", "ObjectList"]
