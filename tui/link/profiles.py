"""Named links with figures from published sources, and the one a user describes with flags.

Every latency here is one-way, as the `--latency` flag is: the sources mostly quote round-trip
times (RTT), which are halved. A profile's `bandwidth_kbit` is the downlink (server to client, the
way ticks flow) and also the uplink unless `uplink_kbit` says otherwise. None of the sources gives a
jitter or a loss figure, so the named profiles have none: `--jitter` adds it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PROFILES", "LinkProfile", "custom_profile"]

LIGHTHOUSE = (
    "Lighthouse throttling constants, GoogleChrome/lighthouse core/config/constants.js "
    "(https://github.com/GoogleChrome/lighthouse/blob/main/core/config/constants.js) and docs/throttling.md"
)


@dataclass(frozen=True, slots=True)
class LinkProfile:
    """A link model: what every byte of a mode client's connections goes through, each way.

    >>> PROFILES["4g"].describe()
    '4g: 75 ms one-way, 1.6 Mbit/s down, 750 kbit/s up'
    """

    name: str
    latency_ms: float
    """One-way, in each direction."""
    jitter_ms: float = 0.0
    """Each chunk's extra delay, uniform in [0, jitter_ms]; bytes are never reordered by it."""
    bandwidth_kbit: float | None = None
    """Downlink (server to client), and the uplink unless `uplink_kbit` is set; None: unlimited."""
    stall_chance: float = 0.0
    """Per chunk: the chance that it (and so what follows it) waits `stall_ms` more, as a lost
    segment waits for its retransmission."""
    stall_ms: float = 0.0
    source: str = ""
    """Where the figures come from: a citation a README or a help pane can print."""
    uplink_kbit: float | None = None
    """Client to server, when a source gives it apart from the downlink; None: as `bandwidth_kbit`."""

    def __post_init__(self) -> None:
        if min(self.latency_ms, self.jitter_ms, self.stall_ms) < 0:
            raise ValueError("latency, jitter and stall must not be negative")
        if not 0.0 <= self.stall_chance <= 1.0:
            raise ValueError("stall_chance is a probability, between 0 and 1")
        for rate in (self.bandwidth_kbit, self.uplink_kbit):
            if rate is not None and rate <= 0:
                raise ValueError("a bandwidth must be positive (None for unlimited)")

    @property
    def emulates(self) -> bool:
        """False for a link that changes nothing (loopback): the app then connects directly."""
        return bool(
            self.latency_ms
            or self.jitter_ms
            or self.bandwidth_kbit is not None
            or self.uplink_kbit is not None
            or (self.stall_chance and self.stall_ms)
        )

    @property
    def effective_uplink_kbit(self) -> float | None:
        """The client-to-server rate in force."""
        return self.uplink_kbit if self.uplink_kbit is not None else self.bandwidth_kbit

    def describe(self) -> str:
        """Short, for a pane or a status bar: "4g: 75 ms one-way, 1.6 Mbit/s down, 750 kbit/s up"."""
        if not self.emulates:
            return f"{self.name}: direct, no link model"
        if self.jitter_ms:
            latency = f"{_ms(self.latency_ms)}-{_ms(self.latency_ms + self.jitter_ms)} ms one-way"
        else:
            latency = f"{_ms(self.latency_ms)} ms one-way"
        parts = [latency]
        if self.uplink_kbit is not None and self.uplink_kbit != self.bandwidth_kbit:
            down = _rate(self.bandwidth_kbit) if self.bandwidth_kbit is not None else "unlimited"
            parts.append(f"{down} down, {_rate(self.uplink_kbit)} up")
        elif self.bandwidth_kbit is not None:
            parts.append(_rate(self.bandwidth_kbit))
        if self.stall_chance and self.stall_ms:
            parts.append(f"stalls of {_ms(self.stall_ms)} ms at {100 * self.stall_chance:g}%")
        return f"{self.name}: " + ", ".join(parts)


def _ms(value: float) -> str:
    return f"{value:.3g}" if value < 10 else f"{value:.0f}"


def _rate(kbit: float) -> str:
    return f"{kbit / 1000:.2g} Mbit/s" if kbit >= 1000 else f"{kbit:.0f} kbit/s"


PROFILES: dict[str, LinkProfile] = {
    profile.name: profile
    for profile in (
        LinkProfile("loopback", 0.0, source="no link model: the app connects to the server directly"),
        LinkProfile(
            "lan",
            0.25,
            source=(
                "round trip within the same data centre 0.5 ms, 'Latency numbers every programmer should "
                "know' (Jeff Dean), https://gist.github.com/jboner/2841832"
            ),
        ),
        LinkProfile("broadband", 20.0, bandwidth_kbit=10 * 1024, source=f"desktopDense4G, RTT 40 ms: {LIGHTHOUSE}"),
        LinkProfile(
            "4g",
            75.0,
            bandwidth_kbit=1.6 * 1024,
            uplink_kbit=750.0,
            source=f"mobileSlow4G (Lighthouse's default mobile throttling), RTT 150 ms: {LIGHTHOUSE}",
        ),
        LinkProfile("3g", 150.0, bandwidth_kbit=700.0, source=f"mobileRegular3G, RTT 300 ms: {LIGHTHOUSE}"),
        LinkProfile(
            "satellite",
            279.0,
            source=(
                "geostationary hop at the edge of the satellite's view, RTT at least 558 ms (propagation "
                "only): RFC 2488 section 2, https://www.rfc-editor.org/rfc/rfc2488"
            ),
        ),
    )
}
"""The named links, fastest first (the order a key cycles them in)."""


def custom_profile(latency_ms: float, jitter_ms: float = 0.0, bandwidth_kbit: float | None = None) -> LinkProfile:
    """The link the `--latency`, `--jitter` and `--bandwidth` flags describe."""
    return LinkProfile(
        "custom", latency_ms, jitter_ms, bandwidth_kbit, source="--latency, --jitter and --bandwidth flags"
    )
