"""Planned reads: a whole query answered by one SQL statement that builds the response JSON.

After strawberry has parsed and validated an operation (and the cost, depth and permission
checks ran), the Planner extension tries to compile it. ObjectPlans (in plans.py) say for each
hot type how each field is computed in SQL from a row, and how nested lists and connections are
reached. When every selected field of every root field is covered, the operation becomes one
SELECT that returns the `data` object as JSON text, which the endpoint sends without decoding:
no resolver runs and Python touches no value. Anything the plans do not cover (a field, a
mutation, an argument value they cannot read) raises Unplannable and the operation runs the
ordinary way, with the same answer; tests run a corpus both ways and compare.

The statement runs in the request's transaction, so row-level security applies as to any read.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cachetools import LRUCache
from graphql import (
    BooleanValueNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    coerce_input_value,
    is_input_type,
    type_from_ast,
    value_from_ast,
)
from graphql.pyutils import Undefined
from sqlalchemy import ColumnElement, Select, Text, func, literal, select, text
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import KeyedColumnElement
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionResult
from strawberry.utils.str_converters import to_camel_case

from brandloop.auth.permissions import Permission
from brandloop.db.session import driver
from brandloop.errors import ApiError, InvalidInput
from brandloop.graphql.relay import check_page_size, parse_cursor
from brandloop.observability import operation_label

T = TypeVar("T")
Row = dict[str, KeyedColumnElement[Any]]
"""The columns of the row a plan builds from, by name (a table's or a subquery's)."""


class Unplannable(Exception):
    """The operation is answered the ordinary way."""


@dataclass(frozen=True, slots=True)
class PlannedData:
    """The response's `data`, as JSON text built by PostgreSQL."""

    json: str


@dataclass
class Scope:
    """What compiling one operation needs to read its selections and arguments."""

    schema: GraphQLSchema
    fragments: dict[str, FragmentDefinitionNode]
    variables: dict[str, Any]
    max_page_size: int
    needs: set[Permission] = field(default_factory=set)
    """The permissions of the nested fields compiled (the roots' are checked apart)."""

    def argument(self, node: FieldNode, parent: GraphQLObjectType, name: str) -> Any:
        """The coerced value of an argument (its default when not given)."""
        definition = parent.fields[node.name.value].args[name]
        given = next((a for a in node.arguments or () if a.name.value == name), None)
        if given is None or (
            isinstance(given.value, VariableNode) and given.value.name.value not in self.variables
        ):
            return definition.default_value if definition.default_value is not Undefined else None
        value = value_from_ast(given.value, definition.type, self.variables)
        if value is Undefined:
            raise Unplannable(name)
        return value

    def input(self, node: FieldNode, parent: GraphQLObjectType, name: str, cls: type[T]) -> T | None:
        """An input-object argument as its strawberry class (None when not given)."""
        value = self.argument(node, parent, name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise Unplannable(name)
        definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
        fields = {to_camel_case(f.python_name): f.python_name for f in definition.fields}
        if not set(value) <= set(fields):
            raise Unplannable(name)
        return cls(**{fields[key]: item for key, item in value.items()})

    def selections(
        self, parent: GraphQLObjectType, selection_set: SelectionSetNode | None
    ) -> list[tuple[str, FieldNode]]:
        """The fields to answer, by response key, in response order (fragments expanded,
        @include/@skip applied, repeated keys merged)."""
        merged: dict[str, FieldNode] = {}
        self._collect(parent, selection_set, merged)
        return list(merged.items())

    def _collect(
        self, parent: GraphQLObjectType, selection_set: SelectionSetNode | None, into: dict[str, FieldNode]
    ) -> None:
        for selection in selection_set.selections if selection_set else ():
            if not self._included(selection):
                continue
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                seen = into.get(key)
                if seen is not None and selection.selection_set is not None:
                    combined = (
                        *(seen.selection_set.selections if seen.selection_set else ()),
                        *selection.selection_set.selections,
                    )
                    selection = FieldNode(
                        name=seen.name,
                        alias=seen.alias,
                        arguments=seen.arguments,
                        directives=(),
                        selection_set=SelectionSetNode(selections=combined),
                    )
                into[key] = selection
            elif isinstance(selection, InlineFragmentNode):
                if selection.type_condition and selection.type_condition.name.value != parent.name:
                    raise Unplannable("abstract fragment")
                self._collect(parent, selection.selection_set, into)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments[selection.name.value]
                if fragment.type_condition.name.value != parent.name:
                    raise Unplannable("abstract fragment")
                self._collect(parent, fragment.selection_set, into)

    def _included(self, node: Any) -> bool:
        for directive in node.directives or ():
            name = directive.name.value
            if name not in ("include", "skip"):
                raise Unplannable(f"@{name}")
            (argument,) = directive.arguments
            value = argument.value
            if isinstance(value, VariableNode):
                condition = bool(self.variables.get(value.name.value))
            elif isinstance(value, BooleanValueNode):
                condition = value.value
            else:
                raise Unplannable("directive argument")
            if condition != (name == "include"):
                return False
        return True


Builder = Callable[[Scope, GraphQLObjectType, FieldNode, Row], ColumnElement[Any]]
"""Builds the SQL value of one field (JSON or scalar) from the row of its parent."""


@dataclass
class ObjectPlan:
    """How to answer a GraphQL object type from a row: scalars and nested values alike."""

    type_name: str
    fields: dict[str, Builder] = field(default_factory=dict)

    def json(self, scope: Scope, selection_set: SelectionSetNode | None, row: Row) -> ColumnElement[Any]:
        """The object as a SQL json value."""
        gql_type = scope.schema.get_type(self.type_name)
        assert isinstance(gql_type, GraphQLObjectType)
        pairs: list[Any] = []
        for key, node in scope.selections(gql_type, selection_set):
            name = node.name.value
            if name == "__typename":
                value: ColumnElement[Any] = literal(self.type_name)
            elif name in self.fields:
                value = self.fields[name](scope, gql_type, node, row)
            else:
                raise Unplannable(f"{self.type_name}.{name}")
            pairs += [literal(key), value]
        if not pairs:
            raise Unplannable("empty selection")
        return func.json_build_object(*pairs)


def column(name: str) -> Builder:
    """A field that is a column of the row."""
    return lambda scope, parent, node, row: row[name]


def computed(make: Callable[[Row], ColumnElement[Any]]) -> Builder:
    """A field computed from the row, e.g. an enum name or a formatted time."""
    return lambda scope, parent, node, row: make(row)


def nested(plan: Callable[[], ObjectPlan], make_row: Callable[[Row], Row]) -> Builder:
    """An object built from the same row, e.g. Money from an amount and a currency."""
    return lambda scope, parent, node, row: plan().json(scope, node.selection_set, make_row(row))


def needs(permission: Permission, builder: Builder) -> Builder:
    """A field that, like its resolver, needs a permission: the plan then needs it too."""

    def build(scope: Scope, parent: GraphQLObjectType, node: FieldNode, row: Row) -> ColumnElement[Any]:
        scope.needs.add(permission)
        return builder(scope, parent, node, row)

    return build


def iso_time(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """A timestamptz as strawberry writes datetimes (Python's isoformat in UTC)."""
    return func.brandloop_iso_time(value)


def global_id(type_name: str, value: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.brandloop_global_id(type_name, value)


def enum_name(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """Our enums store lower-case values whose GraphQL names are the same in upper case."""
    return func.upper(value)


def json_list(query: Select[Any]) -> ColumnElement[Any]:
    """A correlated subquery selecting one json value per row, as a json array ([] when none)."""
    return func.coalesce(query.scalar_subquery(), func.json_build_array())


def connection(
    scope: Scope,
    parent: GraphQLObjectType,
    node: FieldNode,
    *,
    type_name: str,
    node_plan: ObjectPlan,
    page: Callable[[int, uuid.UUID | None], Select[Any]],
    count: Callable[[], Select[Any]],
) -> ColumnElement[Any]:
    """A keyset connection as one aggregate over its page: `page(limit, after)` selects the rows
    by id (correlated to the parent row when nested), `count()` counts them all."""
    first = check_page_size(int(scope.argument(node, parent, "first")), scope.max_page_size)
    after = parse_cursor(scope.argument(node, parent, "after"))
    rows = page(first + 1, after).subquery()
    numbered = select(rows, func.row_number().over(order_by=rows.c.id).label("_n")).subquery()
    row: Row = {c.key: c for c in numbered.c}
    in_page = numbered.c._n <= first
    connection_type = _object_type(scope, type_name)
    pairs: list[Any] = []
    for key, field_node in scope.selections(connection_type, node.selection_set):
        name = field_node.name.value
        if name == "__typename":
            value: ColumnElement[Any] = literal(type_name)
        elif name == "edges":
            edge = _edge(scope, connection_type, field_node, node_plan, row)
            value = func.coalesce(
                func.json_agg(aggregate_order_by(edge, numbered.c.id)).filter(in_page),
                func.json_build_array(),
            )
        elif name == "pageInfo":
            value = _page_info(scope, field_node, numbered, in_page, first, after is not None)
        elif name == "totalCount":
            value = count().scalar_subquery()
        else:
            raise Unplannable(f"{type_name}.{name}")
        pairs += [literal(key), value]
    # GROUP BY (): one row even for an empty page, whatever the selection aggregates.
    return select(func.json_build_object(*pairs)).select_from(numbered).group_by(text("()")).scalar_subquery()


def _object_type(scope: Scope, name: str) -> GraphQLObjectType:
    found = scope.schema.get_type(name)
    assert isinstance(found, GraphQLObjectType), name
    return found


def _edge(
    scope: Scope, connection_type: GraphQLObjectType, node: FieldNode, node_plan: ObjectPlan, row: Row
) -> ColumnElement[Any]:
    edge_type = _object_type(scope, connection_type.name.removesuffix("Connection") + "Edge")
    pairs: list[Any] = []
    for key, field_node in scope.selections(edge_type, node.selection_set):
        name = field_node.name.value
        if name == "__typename":
            value: ColumnElement[Any] = literal(edge_type.name)
        elif name == "cursor":
            value = global_id("k", row["id"])
        elif name == "node":
            value = node_plan.json(scope, field_node.selection_set, row)
        else:
            raise Unplannable(f"{edge_type.name}.{name}")
        pairs += [literal(key), value]
    return func.json_build_object(*pairs)


def _page_info(
    scope: Scope, node: FieldNode, numbered: Any, in_page: ColumnElement[Any], first: int, has_previous: bool
) -> ColumnElement[Any]:
    ids = numbered.c.id
    values: dict[str, ColumnElement[Any]] = {
        "__typename": literal("PageInfo"),
        "hasNextPage": func.count() > first,
        "hasPreviousPage": literal(has_previous),
        # uuid has no min/max aggregate: the first element of the ordered ids of the page.
        "startCursor": global_id("k", func.array_agg(aggregate_order_by(ids, ids.asc())).filter(in_page)[1]),
        "endCursor": global_id("k", func.array_agg(aggregate_order_by(ids, ids.desc())).filter(in_page)[1]),
    }
    pairs: list[Any] = []
    for key, field_node in scope.selections(_object_type(scope, "PageInfo"), node.selection_set):
        pairs += [literal(key), values[field_node.name.value]]
    return func.json_build_object(*pairs)


RootBuilder = Callable[[Scope, GraphQLObjectType, FieldNode], ColumnElement[Any]]


@dataclass(frozen=True)
class RootPlan:
    permission: Permission
    build: RootBuilder
    by_id: bool = False
    """The root is one row by primary key and everything below it hangs off that row: a generic
    plan of its statement is as good as a custom one, and saves planning it on every request."""


@dataclass(frozen=True, slots=True)
class CompiledPlan:
    """Everything needed to answer the same request again without parsing or validating it."""

    sql: str
    parameters: tuple[Any, ...]
    permissions: frozenset[Permission]
    cost: int | None
    label: str
    """The operation's metrics label."""
    generic: bool
    """Run with a generic plan (see RootPlan.by_id)."""


PlanKey = tuple[str, str | None, str]


def plan_key(query: str, operation_name: str | None, variables: dict[str, Any] | None) -> PlanKey | None:
    """The cache key of a request; None when it is too big to keep (bounds the cache's memory)."""
    key = (query, operation_name, json.dumps(variables or {}, sort_keys=True, default=str))
    return key if len(key[0]) + len(key[2]) <= MAX_CACHED_KEY else None


PlanCache = LRUCache[PlanKey, CompiledPlan | None]
"""Compiled statements by (query, operation, variables); None remembers "not plannable". No
tenant is in a plan (row-level security supplies it), so tenants share them."""


MAX_CACHED_KEY = 20_000
"""Characters of query and variables beyond which a plan is not kept (bounds the cache's memory)."""


def plan_cache(size: int = 2048) -> PlanCache:
    return LRUCache(maxsize=size)


class Planner(SchemaExtension):
    """Answers covered queries with one statement; leaves everything else to normal execution."""

    def __init__(self, *, roots: dict[str, RootPlan], max_page_size: int, cache: PlanCache) -> None:
        self.roots = roots
        self.max_page_size = max_page_size
        self.cache = cache
        self.planned = False

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        if context.result is None and context.query is not None and self._allowed():
            key = plan_key(context.query, context.operation_name, context.variables)
            if key is not None and key in self.cache:
                plan = self.cache[key]
            else:
                plan = self._plan(context.context.session.bind.dialect)
                if key is not None:
                    self.cache[key] = plan
            principal = context.context.principal
            if plan is not None and all(principal.can(p) for p in plan.permissions):
                data = await context.context.run(fetch_json, plan)
                context.result = ExecutionResult(data=PlannedData(data), errors=None)  # type: ignore[arg-type]
                self.planned = True
        yield

    def _allowed(self) -> bool:
        """Plans are shared between callers: the caller's permissions are checked each time
        (a caller without them gets FORBIDDEN from the ordinary path)."""
        principal = self.execution_context.context.principal
        return all(principal.can(self.roots[name].permission) for name in self._root_names())

    def _plan(self, dialect: Dialect) -> CompiledPlan | None:
        try:
            statement, nested = self._compile()
        except (Unplannable, ApiError, InvalidInput):
            return None  # the ordinary execution answers, with its errors
        # Lists (IN ...) are expanded now, so that the SQL and its parameters are final.
        compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        values = compiled.construct_params()
        context = self.execution_context
        return CompiledPlan(
            sql=compiled.string,
            parameters=tuple(values[name] for name in compiled.positiontup or ()),
            permissions=frozenset({self.roots[name].permission for name in self._root_names()} | nested),
            cost=context.context.cost,
            label=operation_label(context),
            generic=all(self.roots[name].by_id for name in self._root_names()),
        )

    def _root_names(self) -> set[str]:
        document = self.execution_context.graphql_document
        definitions = document.definitions if document else ()
        return {
            selection.name.value
            for definition in definitions
            if isinstance(definition, OperationDefinitionNode)
            for selection in definition.selection_set.selections
            if isinstance(selection, FieldNode) and selection.name.value in self.roots
        }

    def get_results(self) -> dict[str, Any]:
        return {"planned": True} if self.planned else {}

    def _compile(self) -> tuple[Select[Any], set[Permission]]:
        """The statement, and the permissions its nested fields need."""
        context = self.execution_context
        document = context.graphql_document
        if document is None:
            raise Unplannable("no document")
        operations = [
            d
            for d in document.definitions
            if isinstance(d, OperationDefinitionNode)
            and (context.operation_name is None or (d.name and d.name.value == context.operation_name))
        ]
        if len(operations) != 1 or operations[0].operation is not OperationType.QUERY:
            raise Unplannable("not one query")
        operation = operations[0]
        schema = context.schema._schema
        scope = Scope(
            schema=schema,
            fragments={
                d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
            },
            variables=_coerce_variables(schema, operation, context.variables or {}),
            max_page_size=self.max_page_size,
        )
        query_type = schema.query_type
        assert query_type is not None
        pairs: list[Any] = []
        for key, node in scope.selections(query_type, operation.selection_set):
            root = self.roots.get(node.name.value)
            if root is None:
                raise Unplannable(node.name.value)
            pairs += [literal(key), root.build(scope, query_type, node)]
        return select(func.json_build_object(*pairs).cast(Text)), scope.needs


_GENERIC_PLANS = "SELECT set_config('plan_cache_mode', 'force_generic_plan', true)"
"""For the rest of the transaction: the engine forces custom plans, which filtered lists need."""


async def fetch_json(session: Any, plan: CompiledPlan) -> str:
    # Already compiled: straight to the driver (prepared statements are cached per connection).
    connection = await driver(session)
    if plan.generic:
        await connection.execute(_GENERIC_PLANS)
    return str(await connection.fetchval(plan.sql, *plan.parameters))


def _coerce_variables(
    schema: GraphQLSchema, operation: OperationDefinitionNode, raw: dict[str, Any]
) -> dict[str, Any]:
    coerced = {}
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        var_type = type_from_ast(schema, definition.type)
        if not is_input_type(var_type):
            raise Unplannable(f"variable {name}")
        if name in raw:
            value = coerce_input_value(raw[name], var_type)
        elif definition.default_value is not None:
            value = value_from_ast(definition.default_value, var_type)
        else:
            continue
        if value is Undefined:
            raise Unplannable(f"variable {name}")
        coerced[name] = value
    return coerced
