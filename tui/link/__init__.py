"""The link model (issue 15): latency, jitter, bandwidth and stalls between a mode client and the
server, applied by a TCP relay in the app's own process (`relay` says why that way).

    link = Link(PROFILES["satellite"])
    client = SSEClient(link.through(server_url), ...)
    ...
    link.close()
"""

from tui.link.profiles import PROFILES, LinkProfile, custom_profile
from tui.link.relay import QUEUE_LIMIT, Link, LinkStats

__all__ = ["PROFILES", "QUEUE_LIMIT", "Link", "LinkProfile", "LinkStats", "custom_profile"]
