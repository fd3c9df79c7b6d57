"""Query cost: checked before execution, reported in the response's `extensions.cost`.

Each object-returning field costs 1, scalars cost nothing, and everything below a paged field
counts `first` times (its default when not given). Fragments count where they are spread, so
the figure is an upper bound on the objects a query can return.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    value_from_ast,
)
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionResult

PAGED_ARGUMENT = "first"


class QueryCost(SchemaExtension):
    def __init__(self, *, maximum: int) -> None:
        self.maximum = maximum
        self.cost: int | None = None

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.result is None:
            fragments = {
                d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
            }
            operation = _operation(document.definitions, context.operation_name)
            schema = context.schema._schema
            root = schema.get_root_type(operation.operation) if operation else None
            if operation is not None and root is not None:
                walker = _Walker(schema, fragments, context.variables or {})
                self.cost = context.context.cost = walker.selection_cost(root, operation.selection_set)
                if self.cost > self.maximum:
                    context.result = ExecutionResult(
                        data=None,
                        errors=[
                            GraphQLError(
                                f"The query would cost {self.cost}, above the limit of {self.maximum}. "
                                "Ask for smaller pages (`first`) or fewer nested lists.",
                                extensions={"code": "QUERY_TOO_COSTLY"},
                            )
                        ],
                    )
        yield

    def get_results(self) -> dict[str, Any]:
        if self.cost is None:
            return {}
        return {"cost": {"requested": self.cost, "maximum": self.maximum}}


def _operation(definitions: Any, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name and o.name.value == name), None)


class _Walker:
    def __init__(
        self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode], variables: dict[str, Any]
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables

    def selection_cost(self, parent: GraphQLNamedType, selection_set: SelectionSetNode | None) -> int:
        if selection_set is None:
            return 0
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field_cost(parent, selection)
            elif isinstance(selection, InlineFragmentNode):
                target = (
                    self.schema.get_type(selection.type_condition.name.value)
                    if selection.type_condition
                    else parent
                )
                total += self.selection_cost(target or parent, selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    target = self.schema.get_type(fragment.type_condition.name.value)
                    total += self.selection_cost(target or parent, fragment.selection_set)
        return total

    def field_cost(self, parent: GraphQLNamedType, node: FieldNode) -> int:
        if not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            return 0
        definition = parent.fields.get(node.name.value)
        if definition is None:  # __typename and introspection
            return 0
        returns = get_named_type(definition.type)
        if not isinstance(returns, GraphQLObjectType | GraphQLInterfaceType):
            return 0
        return 1 + self.multiplier(definition, node) * self.selection_cost(returns, node.selection_set)

    def multiplier(self, definition: GraphQLField, node: FieldNode) -> int:
        argument = definition.args.get(PAGED_ARGUMENT)
        if argument is None:
            return 1
        given = next((a for a in node.arguments or () if a.name.value == PAGED_ARGUMENT), None)
        value = (
            value_from_ast(given.value, argument.type, self.variables)
            if given is not None
            else argument.default_value
        )
        return max(int(value), 1) if isinstance(value, int) else 1
