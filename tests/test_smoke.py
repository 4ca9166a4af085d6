import pytest


@pytest.mark.django_db
def test_login_is_required_on_console_pages(client):
    for url in [
        "/getting-started/",
        "/connections/",
        "/connections/settings/",
        "/triggers/",
        "/errors/",
    ]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/"), url


@pytest.mark.django_db
def test_getting_started_shows_the_menu(admin_client):
    response = admin_client.get("/getting-started/")
    assert response.status_code == 200
    for label in [
        "Connections",
        "Entity sync status",
        "Triggers",
        "Errors",
        "Sync queue",
        "Bulk operations",
        "General settings",
    ]:
        assert label in response.content.decode()


@pytest.mark.django_db
def test_a_user_who_is_not_an_admin_is_refused(client, outsider):
    client.force_login(outsider)
    response = client.get("/getting-started/")
    assert response.status_code == 403
    assert "not an admin" in response.content.decode()


@pytest.mark.django_db
def test_unknown_pages_also_need_login(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


@pytest.mark.django_db
def test_api_errors_are_json_everywhere(admin_client):
    response = admin_client.get("/api/connections/not-a-uuid/")
    assert response.status_code == 404
    assert response.json() == {"error": "There is nothing at this address."}
    response = admin_client.post(
        "/api/connections/initiate/", data="{bad json", content_type="application/json"
    )
    assert response.status_code == 400
    assert set(response.json()) <= {"error", "fields"} and response.json()["error"]


@pytest.mark.django_db
def test_unknown_console_page_is_a_console_404(admin_client):
    response = admin_client.get("/no-such-page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "There is nothing at this address." in page and "General settings" in page


@pytest.mark.django_db
def test_api_schema_is_for_admins_only(admin_client):
    from django.test import Client

    assert Client().get("/api/schema/").status_code in (401, 403)
    assert admin_client.get("/api/schema/").status_code == 200
    assert admin_client.get("/api/docs/").status_code == 200
