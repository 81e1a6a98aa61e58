"""Smoke test: the whole sign-up to sign-in journey through the pages."""

from tests.support.accounts import STRONG_PASSWORD
from tests.support.mail import delivered, link_in


def test_sign_up_verify_sign_in_sign_out(client, db):
    response = client.post(
        "/accounts/signup/",
        {"email": "Bob@Example.com", "name": "Bob", "password1": STRONG_PASSWORD, "password2": STRONG_PASSWORD},
    )
    assert response.status_code == 302
    assert len(delivered()) == 1
    link = link_in(delivered()[0], "/verify-email/")
    path = link.removeprefix("http://localhost:8000")
    response = client.get(path)
    assert response.status_code == 302
    response = client.get(response["Location"])
    assert b"Verify my email address" in response.content
    response = client.post("/accounts/verify-email/confirm/")
    assert response.status_code == 302
    response = client.post("/accounts/login/", {"email": "bob@example.com", "password": STRONG_PASSWORD})
    assert response.status_code == 302, response.content.decode()
    assert client.get("/accounts/").status_code == 200
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/accounts/").status_code == 302
