"""DCAT-AP 3 for the catalog and each dataset, as JSON-LD, Turtle or RDF/XML.

Checked in tests against the DCAT-AP 3.0.1 split SHACL shapes (`shapes.ttl` + `range.ttl`,
no inference), so every node a property points at is typed with the class the range expects
(a licence is a `dct:LicenseDocument`, a theme a `skos:Concept` with a `skos:prefLabel`, ...).
EU vocabularies (data themes, frequencies, file types, languages, access rights) are named by
their Publications Office IRIs. The catalog is paged with Hydra, in both the current terms
(`hydra:PartialCollectionView`, `hydra:next`) and the legacy ones (`hydra:PagedCollection`,
`hydra:nextPage`) that ckanext-dcat harvesters read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Literal as TypingLiteral

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, RDFS, SKOS, XSD

from townhall.catalog.models import Dataset, DatasetVersion, Resource
from townhall.catalog.vocabularies import FREQUENCIES, FREQUENCY_BASE, LICENSES, THEME_BASE, THEMES
from townhall.feeds import links

ADMS = Namespace("http://www.w3.org/ns/adms#")
DCATAP = Namespace("http://data.europa.eu/r5r/")
HYDRA = Namespace("http://www.w3.org/ns/hydra/core#")
LOCN = Namespace("http://www.w3.org/ns/locn#")
GSP = Namespace("http://www.opengis.net/ont/geosparql#")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")

EU = "http://publications.europa.eu/resource/authority/"
THEME_SCHEME = URIRef(EU + "data-theme")
FILE_TYPE_BASE = EU + "file-type/"
LANGUAGE_BASE = EU + "language/"
ACCESS_PUBLIC = URIRef(EU + "access-right/PUBLIC")
AVAILABILITY_STABLE = URIRef("http://data.europa.eu/r5r/availability/stable")
LOCAL_AUTHORITY = URIRef("http://purl.org/adms/publishertype/LocalAuthority")
LICENCE_TYPE = "http://purl.org/adms/licencetype/"
OPENAPI = URIRef("https://spec.openapis.org/oas/v3.1.0")
IANA_MEDIA_TYPES = "https://www.iana.org/assignments/media-types/"

Format = TypingLiteral["jsonld", "ttl", "rdf"]
SERIALIZATIONS: dict[str, tuple[str, str]] = {
    "jsonld": ("json-ld", "application/ld+json"),
    "ttl": ("turtle", "text/turtle; charset=utf-8"),
    "rdf": ("xml", "application/rdf+xml"),
}
PREFIXES = {
    "adms": ADMS,
    "dcat": DCAT,
    "dcatap": DCATAP,
    "dct": DCTERMS,
    "foaf": FOAF,
    "hydra": HYDRA,
    "locn": LOCN,
    "gsp": GSP,
    "rdfs": RDFS,
    "skos": SKOS,
    "vcard": VCARD,
    "xsd": XSD,
}

# ISO 639-1 → the EU language authority's ISO 639-2/3 codes, for the languages offices use.
LANGUAGES = {
    "bg": "BUL", "ca": "CAT", "cs": "CES", "da": "DAN", "de": "DEU", "el": "ELL", "en": "ENG",
    "es": "SPA", "et": "EST", "eu": "EUS", "fi": "FIN", "fr": "FRA", "ga": "GLE", "gl": "GLG",
    "hr": "HRV", "hu": "HUN", "is": "ISL", "it": "ITA", "lb": "LTZ", "lt": "LIT", "lv": "LAV",
    "mt": "MLT", "nb": "NOB", "nl": "NLD", "nn": "NNO", "no": "NOR", "pl": "POL", "pt": "POR",
    "ro": "RON", "ru": "RUS", "sk": "SLK", "sl": "SLV", "sq": "SQI", "sr": "SRP", "sv": "SWE",
    "tr": "TUR", "uk": "UKR", "ar": "ARA", "zh": "ZHO", "ja": "JPN", "ko": "KOR",
}  # fmt: skip
# Resource format → (EU file-type code, IANA media type).
FILE_TYPES = {
    "CSV": ("CSV", "text/csv"),
    "TSV": ("TSV", "text/tab-separated-values"),
    "JSON": ("JSON", "application/json"),
    "NDJSON": ("JSON", "application/x-ndjson"),
    "GEOJSON": ("GEOJSON", "application/geo+json"),
    "XLSX": ("XLSX", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "XLS": ("XLS", "application/vnd.ms-excel"),
    "PARQUET": ("PARQUET", "application/vnd.apache.parquet"),
    "PDF": ("PDF", "application/pdf"),
    "ZIP": ("ZIP", "application/zip"),
    "XML": ("XML", "application/xml"),
    "HTML": ("HTML", "text/html"),
    "TXT": ("TXT", "text/plain"),
}


class DcatBuilder:
    """Adds catalog things to one graph; each node is typed once, whoever points at it."""

    def __init__(self, *, base_url: str, site_name: str) -> None:
        self.base = links.base(base_url)
        self.site_name = site_name
        self.graph = Graph()
        for prefix, namespace in PREFIXES.items():
            self.graph.bind(prefix, namespace)
        self.service = URIRef(f"{self.base}/api/v1")

    # Shared nodes

    def concept(self, iri: URIRef, label: str, *classes: URIRef) -> URIRef:
        g = self.graph
        g.add((iri, RDF.type, SKOS.Concept))
        for cls in classes:
            g.add((iri, RDF.type, cls))
        if (iri, SKOS.prefLabel, None) not in g:
            g.add((iri, SKOS.prefLabel, Literal(label, lang="en")))
        return iri

    def site_publisher(self) -> URIRef:
        agent = URIRef(f"{self.base}/#publisher")
        self.graph.add((agent, RDF.type, FOAF.Agent))
        self.graph.set((agent, FOAF.name, Literal(self.site_name)))
        self.graph.set((agent, DCTERMS.type, self.concept(LOCAL_AUTHORITY, "Local Authority")))
        return agent

    def organization(self, dataset: Dataset) -> URIRef:
        organization = dataset.organization
        agent = URIRef(links.organization_url(self.base, organization.slug))
        g = self.graph
        g.add((agent, RDF.type, FOAF.Agent))
        g.add((agent, RDF.type, FOAF.Organization))
        g.set((agent, FOAF.name, Literal(organization.name)))
        g.set((agent, DCTERMS.type, LOCAL_AUTHORITY))
        self.concept(LOCAL_AUTHORITY, "Local Authority")
        return agent

    def theme(self, code: str) -> URIRef:
        g = self.graph
        g.add((THEME_SCHEME, RDF.type, SKOS.ConceptScheme))
        g.set((THEME_SCHEME, DCTERMS.title, Literal("Data theme", lang="en")))
        iri = self.concept(URIRef(THEME_BASE + code), THEMES[code])
        g.add((iri, SKOS.inScheme, THEME_SCHEME))
        return iri

    def data_service(self) -> URIRef:
        g = self.graph
        service = self.service
        if (service, RDF.type, DCAT.DataService) in g:
            return service
        g.add((service, RDF.type, DCAT.DataService))
        g.add((service, DCTERMS.title, Literal(f"{self.site_name} data API", lang="en")))
        g.add(
            (
                service,
                DCTERMS.description,
                Literal(
                    "Rows, aggregates, SQL and downloads of every published table; "
                    "CKAN Action API at /api/3/action/.",
                    lang="en",
                ),
            )
        )
        g.add((service, DCAT.endpointURL, URIRef(f"{self.base}/api/v1/")))
        g.add((service, DCAT.endpointDescription, URIRef(f"{self.base}/api/openapi.json")))
        g.add((service, DCTERMS.publisher, self.site_publisher()))
        g.add((service, DCTERMS.conformsTo, OPENAPI))
        g.add((OPENAPI, RDF.type, DCTERMS.Standard))
        g.add((service, DCAT.theme, self.theme("GOVE")))
        for keyword in ("open data", "API", "SQL"):
            g.add((service, DCAT.keyword, Literal(keyword, lang="en")))
        return service

    # Datasets

    def dataset(self, dataset: Dataset, versions: dict[int, DatasetVersion]) -> URIRef:
        g = self.graph
        iri = URIRef(links.dataset_url(self.base, dataset.slug))
        g.add((iri, RDF.type, DCAT.Dataset))
        g.add((iri, DCTERMS.title, Literal(dataset.title)))
        # DCAT-AP requires a description; a record without one repeats its title.
        g.add((iri, DCTERMS.description, Literal(dataset.description or dataset.title)))
        g.add((iri, DCTERMS.identifier, Literal(str(iri))))
        g.add((iri, DCTERMS.publisher, self.organization(dataset)))
        g.add((iri, DCTERMS.issued, Literal(dataset.created_at, datatype=XSD.dateTime)))
        g.add((iri, DCTERMS.modified, Literal(dataset.updated_at, datatype=XSD.dateTime)))
        rights = self.concept(ACCESS_PUBLIC, "Public", DCTERMS.RightsStatement)
        g.add((iri, DCTERMS.accessRights, rights))
        landing = URIRef(dataset.landing_page or links.dataset_url(self.base, dataset.slug))
        g.add((landing, RDF.type, FOAF.Document))
        g.add((iri, DCAT.landingPage, landing))
        for keyword in dataset.keywords or []:
            g.add((iri, DCAT.keyword, Literal(keyword)))
        for code in dataset.themes or []:
            if code in THEMES:
                g.add((iri, DCAT.theme, self.theme(code)))
        if dataset.frequency in FREQUENCIES:
            frequency = self.concept(
                URIRef(FREQUENCY_BASE + dataset.frequency),
                FREQUENCIES[dataset.frequency][0],
                DCTERMS.Frequency,
            )
            g.add((iri, DCTERMS.accrualPeriodicity, frequency))
        for code in dataset.languages or []:
            g.add((iri, DCTERMS.language, self.language(code)))
        for standard in dataset.conforms_to or []:
            g.add((iri, DCTERMS.conformsTo, self.standard(standard)))
        self.contact(iri, dataset)
        self.temporal(iri, dataset)
        self.spatial(iri, dataset)
        for resource in dataset.resources:
            g.add((iri, DCAT.distribution, self.distribution(dataset, resource, versions)))
        if any(r.datastore_active for r in dataset.resources):
            g.add((self.data_service(), DCAT.servesDataset, iri))
        return iri

    def language(self, code: str) -> URIRef:
        iso3 = LANGUAGES.get(code.lower())
        if iso3 is not None:
            iri = URIRef(LANGUAGE_BASE + iso3)
        elif len(code) == 3:
            iri = URIRef(LANGUAGE_BASE + code.upper())
        else:
            iri = URIRef(f"http://id.loc.gov/vocabulary/iso639-1/{code.lower()}")
        self.graph.add((iri, RDF.type, DCTERMS.LinguisticSystem))
        return iri

    def standard(self, value: str) -> URIRef | BNode:
        node: URIRef | BNode
        if value.startswith(("http://", "https://")):
            node = URIRef(value)
        else:
            node = BNode()
            self.graph.add((node, DCTERMS.title, Literal(value)))
        self.graph.add((node, RDF.type, DCTERMS.Standard))
        return node

    def contact(self, iri: URIRef, dataset: Dataset) -> None:
        if not (dataset.contact_name or dataset.contact_email):
            return
        g = self.graph
        card = URIRef(f"{iri}#contact")
        g.add((card, RDF.type, VCARD.Kind))
        g.add((card, RDF.type, VCARD.Organization))
        g.add((card, VCARD.fn, Literal(dataset.contact_name or dataset.organization.name)))
        if dataset.contact_email:
            g.add((card, VCARD.hasEmail, URIRef(f"mailto:{dataset.contact_email}")))
        g.add((iri, DCAT.contactPoint, card))

    def temporal(self, iri: URIRef, dataset: Dataset) -> None:
        if not (dataset.temporal_start or dataset.temporal_end):
            return
        period = BNode()
        g = self.graph
        g.add((period, RDF.type, DCTERMS.PeriodOfTime))
        if dataset.temporal_start:
            g.add((period, DCAT.startDate, Literal(dataset.temporal_start, datatype=XSD.date)))
        if dataset.temporal_end:
            g.add((period, DCAT.endDate, Literal(dataset.temporal_end, datatype=XSD.date)))
        g.add((iri, DCTERMS.temporal, period))

    def spatial(self, iri: URIRef, dataset: Dataset) -> None:
        text = (dataset.spatial or "").strip()
        if not text:
            return
        g = self.graph
        location: URIRef | BNode
        if text.startswith(("http://", "https://")) and " " not in text:
            location = URIRef(text)
        else:
            location = BNode()
            if _is_geojson_geometry(text):
                g.add((location, LOCN.geometry, Literal(text, datatype=GSP.geoJSONLiteral)))
                self.bbox_and_centroid(location, text)
            else:
                g.add((location, SKOS.prefLabel, Literal(text)))
        g.add((location, RDF.type, DCTERMS.Location))
        g.add((iri, DCTERMS.spatial, location))

    def bbox_and_centroid(self, location: BNode, geojson: str) -> None:
        """DCAT's `bbox` and `centroid` (WKT) of a GeoJSON geometry; nothing if it is broken."""
        try:
            from shapely.geometry import box, shape

            geometry = shape(json.loads(geojson))
            if geometry.is_empty:
                return
            bounds = box(*geometry.bounds)
            centroid = geometry.centroid
        except (ValueError, TypeError, AttributeError, KeyError, IndexError):
            return
        self.graph.add((location, DCAT.bbox, Literal(bounds.wkt, datatype=GSP.wktLiteral)))
        self.graph.add((location, DCAT.centroid, Literal(centroid.wkt, datatype=GSP.wktLiteral)))

    def distribution(
        self, dataset: Dataset, resource: Resource, versions: dict[int, DatasetVersion]
    ) -> URIRef:
        g = self.graph
        iri = URIRef(links.resource_url(self.base, dataset.slug, resource.id))
        g.add((iri, RDF.type, DCAT.Distribution))
        g.add((iri, DCTERMS.title, Literal(resource.name)))
        is_table = resource.datastore_active and resource.id in versions
        description = resource.description or (
            "The published table as CSV; filter, aggregate or query it with SQL through the "
            "data API."
            if is_table
            else ""
        )
        if description:
            g.add((iri, DCTERMS.description, Literal(description)))
        g.add((iri, DCAT.accessURL, URIRef(links.access_url(self.base, dataset, resource))))
        g.add((iri, DCTERMS.issued, Literal(resource.created_at, datatype=XSD.dateTime)))
        g.add((iri, DCTERMS.modified, Literal(resource.updated_at, datatype=XSD.dateTime)))
        if is_table:
            fmt = "CSV"  # a table downloads as CSV; other formats are listed by the API
            g.add((iri, DCAT.downloadURL, URIRef(links.download_url(self.base, dataset, resource))))
            g.add((iri, DCAT.accessService, self.data_service()))
        else:
            fmt = (resource.format or "").upper()
            if resource.url:
                g.add((iri, DCAT.downloadURL, URIRef(resource.url)))
        if fmt in FILE_TYPES:
            code, media = FILE_TYPES[fmt]
            file_type = URIRef(FILE_TYPE_BASE + code)
            g.add((file_type, RDF.type, DCTERMS.MediaTypeOrExtent))
            g.add((iri, DCTERMS.format, file_type))
            media_iri = URIRef(IANA_MEDIA_TYPES + media)
            g.add((media_iri, RDF.type, DCTERMS.MediaType))
            g.add((iri, DCAT.mediaType, media_iri))
        license = LICENSES.get(dataset.license_id or "")
        if license is not None and license.url:
            document = URIRef(license.url)
            g.add((document, RDF.type, DCTERMS.LicenseDocument))
            g.set((document, DCTERMS.title, Literal(license.title)))
            kind = "Attribution" if license.attribution else "PublicDomain"
            label = "Attribution" if license.attribution else "Public domain"
            g.set((document, DCTERMS.type, self.concept(URIRef(LICENCE_TYPE + kind), label)))
            g.add((iri, DCTERMS.license, document))
        availability = self.concept(AVAILABILITY_STABLE, "Stable")
        g.add((iri, DCATAP.availability, availability))
        return iri

    # The catalog

    def catalog(
        self,
        datasets: Sequence[tuple[Dataset, dict[int, DatasetVersion]]],
        *,
        modified: datetime | None,
        issued: datetime | None = None,
    ) -> URIRef:
        g = self.graph
        catalog = URIRef(f"{self.base}/")
        g.add((catalog, RDF.type, DCAT.Catalog))
        g.add((catalog, DCTERMS.title, Literal(self.site_name)))
        g.add(
            (
                catalog,
                DCTERMS.description,
                Literal(f"Open data published by {self.site_name}.", lang="en"),
            )
        )
        g.add((catalog, DCTERMS.publisher, self.site_publisher()))
        homepage = URIRef(f"{self.base}/")
        g.add((homepage, RDF.type, FOAF.Document))
        g.add((catalog, FOAF.homepage, homepage))
        g.add((THEME_SCHEME, RDF.type, SKOS.ConceptScheme))
        g.set((THEME_SCHEME, DCTERMS.title, Literal("Data theme", lang="en")))
        g.add((catalog, DCAT.themeTaxonomy, THEME_SCHEME))
        if modified is not None:
            g.add((catalog, DCTERMS.modified, Literal(modified, datatype=XSD.dateTime)))
        if issued is not None:
            g.add((catalog, DCTERMS.issued, Literal(issued, datatype=XSD.dateTime)))
        g.add((catalog, DCAT.service, self.data_service()))
        languages: set[str] = set()
        for dataset, versions in datasets:
            g.add((catalog, DCAT.dataset, self.dataset(dataset, versions)))
            languages.update(dataset.languages or [])
        for code in sorted(languages):
            g.add((catalog, DCTERMS.language, self.language(code)))
        return catalog

    def paging(self, page_url: str, *, page: int, page_size: int, total: int) -> None:
        """Hydra paging of the catalog document (`page_url` takes the page number)."""
        g = self.graph
        last = max(1, -(-total // page_size))
        view = URIRef(page_url.format(page=page))
        g.add((view, RDF.type, HYDRA.PartialCollectionView))
        g.add((view, RDF.type, HYDRA.PagedCollection))
        g.add((view, HYDRA.totalItems, Literal(total, datatype=XSD.integer)))
        g.add((view, HYDRA.itemsPerPage, Literal(page_size, datatype=XSD.integer)))
        pages = {"first": 1, "last": last}
        if page > 1:
            pages["previous"] = min(page - 1, last)
        if page < last:
            pages["next"] = page + 1
        for name, number in pages.items():
            target = URIRef(page_url.format(page=number))
            g.add((view, HYDRA[name], target))
            g.add((view, HYDRA[f"{name}Page"], target))


def _is_geojson_geometry(text: str) -> bool:
    if not text.startswith("{"):
        return False
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return isinstance(value, dict) and "type" in value and "coordinates" in value


def serialize(graph: Graph, fmt: str) -> tuple[bytes, str]:
    """The graph in `fmt` (jsonld, ttl or rdf) and its media type."""
    rdflib_format, media_type = SERIALIZATIONS[fmt]
    if fmt == "jsonld":
        context = {prefix: str(namespace) for prefix, namespace in PREFIXES.items()}
        text = graph.serialize(format=rdflib_format, context=context, auto_compact=True)
    else:
        text = graph.serialize(format=rdflib_format)
    return text.encode("utf-8"), media_type
