"""The schema, assembled from each domain's queries and mutations, with its limits."""

from __future__ import annotations

import strawberry
import structlog
from graphql import ASTValidationRule, GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
    max_aliases,
    query_depth_limiter,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from brandloop.audit.graphql import AuditQueries
from brandloop.auth.graphql import ApiKeyMutations, ApiKeyQueries
from brandloop.auth.permissions import Permission
from brandloop.conflicts.graphql import ConflictMutations, ConflictQueries, load_conflict
from brandloop.connections.graphql import ConnectionMutations, ConnectionQueries
from brandloop.customers.graphql import (
    BlocklistQueries,
    CustomerMutations,
    CustomerQueries,
    SegmentQueries,
    load_customer,
)
from brandloop.graphql.context import Info
from brandloop.graphql.errors import INTERNAL, error_code
from brandloop.graphql.limits import QueryCost
from brandloop.graphql.permissions import Needs
from brandloop.graphql.planner import PlanCache, Planner, plan_cache
from brandloop.graphql.plans import ROOTS
from brandloop.graphql.relay import Node, parse_global_id
from brandloop.graphql.scalars import SCALARS
from brandloop.kpis.graphql import KpiMutations, KpiQueries
from brandloop.loyalty.graphql import LoyaltyMutations, LoyaltyQueries, load_program, load_reward
from brandloop.nps.graphql import NpsMutations, NpsQueries, load_survey
from brandloop.observability import OperationMetrics
from brandloop.orders.graphql import OrderMutations, OrderQueries, load_order
from brandloop.settings import Settings
from brandloop.tenancy.graphql import TenancyMutations, TenancyQueries

log = structlog.get_logger("brandloop.graphql")

# How `node(id:)` finds each type that implements Node, and what reading it needs.
NODE_TYPES = {
    "Customer": (Permission.CUSTOMERS_READ, load_customer),
    "Order": (Permission.ORDERS_READ, load_order),
    "LoyaltyProgram": (Permission.LOYALTY_READ, load_program),
    "LoyaltyReward": (Permission.LOYALTY_READ, load_reward),
    "Survey": (Permission.SURVEYS_READ, load_survey),
    "Conflict": (Permission.CONFLICTS_READ, load_conflict),
}


@strawberry.type
class NodeQueries:
    @strawberry.field(
        description="Any object by its global id; null when none of yours has it.",
        extensions=[Needs(Permission.TENANT_READ)],
    )
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        type_name, pk = parse_global_id(id)
        found = NODE_TYPES.get(type_name)
        if found is None:
            return None
        permission, load = found
        info.context.require(permission)
        return await load(info, pk)


Query = merge_types(
    "Query",
    (
        TenancyQueries,
        NodeQueries,
        CustomerQueries,
        SegmentQueries,
        BlocklistQueries,
        OrderQueries,
        LoyaltyQueries,
        NpsQueries,
        ConnectionQueries,
        ConflictQueries,
        KpiQueries,
        ApiKeyQueries,
        AuditQueries,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        TenancyMutations,
        CustomerMutations,
        OrderMutations,
        LoyaltyMutations,
        NpsMutations,
        ConnectionMutations,
        ConflictMutations,
        KpiMutations,
        ApiKeyMutations,
    ),
)


class Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log what went wrong on our side; a client's own mistakes are answered, not logged."""
        for error in errors:
            if error_code(error) == INTERNAL:
                log.error("unexpected error", path=error.path, exc_info=error.original_error)


def create_schema(settings: Settings, plans: PlanCache | None = None) -> strawberry.Schema:
    # The limiters' validation rules are made once: strawberry's limiter extensions make a new
    # rule class per instance, and new classes per request would defeat the validation cache.
    plans = plans if plans is not None else plan_cache()
    limits: list[type[ASTValidationRule]] = [
        query_depth_limiter.create_validator(settings.max_query_depth, None),
        max_aliases.create_validator(settings.max_aliases),
    ]
    return Schema(
        query=Query,
        mutation=Mutation,
        config=StrawberryConfig(scalar_map=SCALARS),
        # Factories: each request gets fresh extension objects (the caches are module-wide).
        extensions=[
            lambda: ParserCache(maxsize=1000),
            lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
            lambda: ValidationCache(maxsize=1000),
            lambda: AddValidationRules(limits),
            lambda: QueryCost(maximum=settings.max_query_cost),
            *(
                [lambda: Planner(roots=ROOTS, max_page_size=settings.max_page_size, cache=plans)]
                if settings.planner
                else []
            ),
            OperationMetrics,
        ],
    )


def sdl() -> str:
    """The schema as SDL, as exported to docs/schema.graphql."""
    return create_schema(Settings()).as_str() + "\n"
