"""Every route of the app, included routers' too (for the OpenAPI document and 405's ``Allow``)."""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute


def dependants(dependant: Any) -> Any:
    """A route's dependant and every dependency below it (FastAPI's tree of ``Dependant``s)."""
    yield dependant
    for sub in dependant.dependencies:
        yield from dependants(sub)


def api_routes(routes: list[Any]) -> list[APIRoute]:
    """Every APIRoute, also those of included routers (FastAPI 0.16x keeps them behind lazy
    ``_IncludedRouter`` entries that ``iter_route_contexts`` resolves; older versions list them)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # before included routers were lazy
        return [route for route in routes if isinstance(route, APIRoute)]
    return [c.original_route for c in iter_route_contexts(routes) if isinstance(c.original_route, APIRoute)]
