"""The directory as EU CPSV-AP linked data (Core Public Service Vocabulary Application Profile),
in Turtle or JSON-LD, built with rdflib.

Each service is a `cpsv:PublicService` with its competent authority (`cv:PublicOrganisation`),
channels (`cv:Channel`, the in-person ones with the office's address and opening hours), costs
(`cv:Cost`), required evidence (`cv:Evidence`), life events (`cv:LifeEvent`), categories
(`cv:thematicArea`), keywords and processing time (`xsd:duration`).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from townhall.directory import queries
from townhall.directory.models import CATEGORY_TAXONOMY, LIFE_EVENT_TAXONOMY, Location, Service

FORMATS = {"turtle": "text/turtle", "jsonld": "application/ld+json"}


def directory_graph(session: Session, base_url: str) -> object:
    """An rdflib Graph of every active service."""
    from rdflib import BNode, Graph, Literal, Namespace, URIRef
    from rdflib.namespace import DCAT, DCTERMS, RDF, SKOS, XSD

    cpsv = Namespace("http://purl.org/vocab/cpsv#")
    cv = Namespace("http://data.europa.eu/m8g/")
    locn = Namespace("http://www.w3.org/ns/locn#")
    schema = Namespace("https://schema.org/")
    base = base_url.rstrip("/")
    graph = Graph()
    for prefix, namespace in (
        ("cpsv", cpsv), ("cv", cv), ("dct", DCTERMS), ("dcat", DCAT), ("skos", SKOS),
        ("locn", locn), ("schema", schema),
    ):  # fmt: skip
        graph.bind(prefix, namespace)

    def organisation(service: Service) -> URIRef | None:
        if service.organization is None:
            return None
        node = URIRef(f"{base}/hsds/organizations/{service.organization.id}")
        graph.add((node, RDF.type, cv.PublicOrganisation))
        graph.add(
            (node, SKOS.prefLabel, Literal(service.organization.organization.name, lang="en"))
        )
        return node

    def office(location: Location) -> URIRef:
        node = URIRef(f"{base}/offices/{location.slug}")
        graph.add((node, RDF.type, DCTERMS.Location))
        graph.add((node, locn.geographicName, Literal(location.name, lang="en")))
        if location.address_1:
            address = BNode()
            graph.add((node, locn.address, address))
            graph.add((address, RDF.type, locn.Address))
            graph.add((address, locn.thoroughfare, Literal(location.address_1)))
            if location.postal_code:
                graph.add((address, locn.postCode, Literal(location.postal_code)))
            if location.city:
                graph.add((address, locn.postName, Literal(location.city)))
        if location.latitude is not None and location.longitude is not None:
            graph.add(
                (
                    node,
                    locn.geometry,
                    Literal(
                        f"POINT({location.longitude} {location.latitude})",
                        datatype=URIRef("http://www.opengis.net/ont/geosparql#wktLiteral"),
                    ),
                )
            )
        return node

    for service in queries.list_services(session):
        node = URIRef(f"{base}/services/{service.slug}")
        graph.add((node, RDF.type, cpsv.PublicService))
        graph.add((node, DCTERMS.identifier, Literal(service.code or service.id)))
        graph.add((node, DCTERMS.title, Literal(service.name, lang="en")))
        if service.description:
            graph.add((node, DCTERMS.description, Literal(service.description, lang="en")))
        graph.add((node, cv.status, Literal(service.status)))
        for keyword in service.keywords or []:
            graph.add((node, DCAT.keyword, Literal(keyword, lang="en")))
        authority = organisation(service)
        if authority is not None:
            graph.add((node, cv.hasCompetentAuthority, authority))
        if service.processing_days is not None:
            graph.add(
                (
                    node,
                    cv.processingTime,
                    Literal(f"P{service.processing_days}D", datatype=XSD.duration),
                )
            )
        for n, cost in enumerate(service.cost_options):
            cost_node = URIRef(f"{base}/services/{service.slug}#cost-{n + 1}")
            graph.add((node, cv.hasCost, cost_node))
            graph.add((cost_node, RDF.type, cv.Cost))
            if cost.amount is not None:
                graph.add((cost_node, cv.value, Literal(cost.amount, datatype=XSD.decimal)))
            if cost.currency:
                graph.add(
                    (
                        cost_node,
                        cv.currency,
                        URIRef(
                            f"http://publications.europa.eu/resource/authority/currency/{cost.currency}"
                        ),
                    )
                )
            description = cost.option or service.fees_description
            if description:
                graph.add((cost_node, DCTERMS.description, Literal(description, lang="en")))
        for n, document in enumerate(service.required_documents):
            evidence = URIRef(f"{base}/services/{service.slug}#evidence-{n + 1}")
            graph.add((node, cpsv.hasInput, evidence))
            graph.add((evidence, RDF.type, cv.Evidence))
            graph.add((evidence, DCTERMS.title, Literal(document.document, lang="en")))
        for channel in service.channels or []:
            channel_node = URIRef(f"{base}/services/{service.slug}#channel-{channel}")
            graph.add((node, cv.hasChannel, channel_node))
            graph.add((channel_node, RDF.type, cv.Channel))
            graph.add((channel_node, DCTERMS.type, Literal(channel)))
            if channel == "in_person":
                for link in service.service_at_locations:
                    graph.add((channel_node, DCTERMS.spatial, office(link.location)))
            if channel == "online" and (service.online_form_url or service.url):
                graph.add(
                    (channel_node, schema.url, URIRef(service.online_form_url or service.url))
                )
        for term in queries.terms_of(service, LIFE_EVENT_TAXONOMY):
            event = URIRef(f"{base}/services?life_event={term.slug}")
            graph.add((node, cv.isGroupedBy, event))
            graph.add((event, RDF.type, cv.LifeEvent))
            graph.add((event, DCTERMS.title, Literal(term.name, lang="en")))
        for term in queries.terms_of(service, CATEGORY_TAXONOMY):
            area = URIRef(f"{base}/services?category={term.slug}")
            graph.add((node, cv.thematicArea, area))
            graph.add((area, SKOS.prefLabel, Literal(term.name, lang="en")))
    return graph


def serialize(session: Session, base_url: str, format: str) -> str:
    """The directory in `turtle` or `jsonld`; raises KeyError for another format."""
    media = FORMATS[format]
    graph = directory_graph(session, base_url)
    rdflib_format = "json-ld" if media == "application/ld+json" else "turtle"
    return graph.serialize(format=rdflib_format)  # type: ignore[attr-defined]
