async def test_register_login_me(client):
    r = await client.post(
        "/api/auth/register", json={"email": "Ann@Example.com", "password": "correct horse"}
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/api/auth/login", json={"email": "ann@example.com", "password": "correct horse"}
    )
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    r = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert r.json()["email"] == "ann@example.com"
