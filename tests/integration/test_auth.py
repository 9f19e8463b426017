"""REDIS_PASSWORD: the app authenticates; a wrong password is a clear outage."""

from support import StackTestCase

PASSWORD = "reqstats-test-secret"


class RedisPassword(StackTestCase):
    redis_password = PASSWORD
    app_env = {"TEST_ENABLED": "0"}

    def test_counts_with_auth(self):
        st = self.require_stack()
        for _ in range(3):
            self.assertEqual(self.get("/api/auth/").status, 200)
        self.wait_counts({"/api/auth/": 3})
        # Straight from Redis (stack.redis_cmd authenticates too).
        self.assertEqual(int(float(st.redis_cmd("ZSCORE", "reqstats:hits", "/api/auth/"))), 3)


class RedisWrongPassword(StackTestCase):
    redis_password = PASSWORD
    app_env = {"REDIS_PASSWORD": "not-the-password", "TEST_ENABLED": "0"}

    def test_stats_503_api_200_and_logged(self):
        st = self.require_stack()
        self.assertEqual(self.get("/api/still-answered/").status, 200)
        self.assertError(self.get("/stats/"), 503, "service_unavailable")
        with open(st.app_log, encoding="utf-8", errors="replace") as f:
            log = f.read()
        self.assertIn("AUTH", log)
        self.assertNotIn("not-the-password", log, "the password must never be logged")
