"""A first look: the stack answers and counts."""

from support import StackTestCase


class Smoke(StackTestCase):
    def test_api_counted(self):
        self.settle()
        before = self.total()
        r = self.get("/api/smoke/")
        self.assertEqual(self.assertJson(r, 200)["path"], "/api/smoke/")
        self.settle()
        # before + the /api hit + the /stats/ read that measured `before`
        self.assertEqual(self.total(), before + 2)
