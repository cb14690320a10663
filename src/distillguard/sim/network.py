"""Client network identities: addresses, ASNs, user agents, TLS fingerprints, payment.

Addresses come from per-ASN prefixes so that /24 and ASN sharing mean what they
would in real logs; the ASNs are from the private-use range (64512-65534).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESIDENTIAL_ASNS = tuple(range(64600, 64640))
CLOUD_ASNS = (64512, 64513, 64514, 64515)  # "hyperscaler" ASNs
PROXY_DC_ASNS = (65001, 65002)  # hosting ASNs favoured by proxy services
CAMPUS_ASN = 64900
COUNTRIES = ("US", "US", "US", "GB", "DE", "IN", "BR", "FR", "CA", "JP", "SG", "KR")
TZ = {"US": -6, "GB": 0, "DE": 1, "IN": 5.5, "BR": -3, "FR": 1, "CA": -5, "JP": 9, "SG": 8, "KR": 9}
BROWSER_UAS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "ChatApp/4.12 (Android 15; Pixel 8)",
)
SDK_UAS = ("openai-python/1.54.3", "openai-python/1.40.0", "OpenAI/NodeJS/4.71.1",
           "langchain-openai/0.2.9", "python-httpx/0.27.2", "curl/8.5.0")
TLS_FPS = ("t13d1516h2_8daaf6152771_e5627efa2ab1", "t13d1517h2_8daaf6152771_b0da82dd1658",
           "t13d1715h2_5b57614c22b0_3d5424432f57", "t13d0912h2_a09f3c656075_14788d8d241b")


@dataclass(frozen=True)
class Identity:
    """The network identity an account usually presents."""

    ips: tuple[str, ...]
    asn: int
    country: str
    user_agent: str
    tls: str


def ip_in(asn: int, rng: np.random.Generator, subnet: int | None = None) -> str:
    """An IPv4 address inside a /16 owned by ``asn`` (deterministic prefix per ASN)."""
    a = 11 + (asn * 7) % 180
    b = (asn * 13) % 250
    c = int(rng.integers(0, 256)) if subnet is None else subnet
    return f"{a}.{b}.{c}.{int(rng.integers(1, 255))}"


def consumer(rng: np.random.Generator) -> Identity:
    asn = int(rng.choice(RESIDENTIAL_ASNS))
    country = str(rng.choice(COUNTRIES))
    ips = tuple(ip_in(asn, rng) for _ in range(int(rng.integers(1, 4))))
    return Identity(ips, asn, country, str(rng.choice(BROWSER_UAS)), str(rng.choice(TLS_FPS[:2])))


def cloud(rng: np.random.Generator) -> Identity:
    asn = int(rng.choice(CLOUD_ASNS))
    ips = tuple(ip_in(asn, rng) for _ in range(int(rng.integers(1, 5))))
    return Identity(ips, asn, str(rng.choice(COUNTRIES)), str(rng.choice(SDK_UAS)),
                    str(rng.choice(TLS_FPS)))


def proxy_pool(rng: np.random.Generator, accounts: int, kind: str = "mixed") -> tuple[str, ...]:
    """Exit addresses of a proxy network: residential exits plus a few datacenter ones.

    ``kind`` "residential" gives residential exits only (many, spread over consumer
    ASNs); "datacenter" gives few exits in hosting ASNs, each shared by many accounts.
    """
    if kind == "residential":
        return tuple(ip_in(int(rng.choice(RESIDENTIAL_ASNS)), rng) for _ in range(max(4, accounts // 2)))
    if kind == "datacenter":
        asns = PROXY_DC_ASNS + CLOUD_ASNS[2:]
        return tuple(ip_in(int(rng.choice(asns)), rng, subnet=int(rng.integers(0, 4)))
                     for _ in range(max(2, accounts // 10)))
    n_res = max(3, accounts // 3)
    res = [ip_in(int(rng.choice(RESIDENTIAL_ASNS)), rng) for _ in range(n_res)]
    dc = [ip_in(int(rng.choice(PROXY_DC_ASNS)), rng) for _ in range(max(2, accounts // 15))]
    return tuple(res + dc)


def asn_of(ip: str) -> int:
    """Recover the ASN from an address made by ``ip_in`` (the simulator's registry)."""
    a, b = (int(x) for x in ip.split(".")[:2])
    for asn in (*RESIDENTIAL_ASNS, *CLOUD_ASNS, *PROXY_DC_ASNS, CAMPUS_ASN):
        if 11 + (asn * 7) % 180 == a and (asn * 13) % 250 == b:
            return asn
    return 0
