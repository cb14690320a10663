"""Indicator sharing between providers: STIX 2.1 export of campaigns and import of partners' indicators."""

from distillguard.share.stix_export import build_bundle, export_stix
from distillguard.share.stix_import import import_stix, indicators_from_bundle

__all__ = ["build_bundle", "export_stix", "import_stix", "indicators_from_bundle"]
