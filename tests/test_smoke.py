from conftest import GraphQLClient, Tenant


async def test_viewer(gql: GraphQLClient, tenant: Tenant) -> None:
    data = await gql.data(tenant.key, "{ viewer { tenant { slug name } role } }")
    assert data["viewer"] == {"tenant": {"slug": tenant.slug, "name": f"Brand {tenant.slug}"}, "role": "OWNER"}
