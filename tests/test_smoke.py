import pytest


@pytest.mark.django_db
def test_login_is_required_on_console_pages(client):
    for url in ["/getting-started/", "/connections/", "/connections/settings/", "/triggers/", "/errors/"]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/"), url


@pytest.mark.django_db
def test_getting_started_shows_the_menu(admin_client):
    response = admin_client.get("/getting-started/")
    assert response.status_code == 200
    for label in ["Connections", "Entity sync status", "Triggers", "Errors", "Sync queue", "Bulk operations", "General settings"]:
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
