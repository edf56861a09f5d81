"""fetch_user_data(user_id) against a stub `requests` module (no network): the stub's
get() records the URL and answers a response whose json() is the user; the function must
ask for a URL that names the user id and return the decoded JSON."""
import json
import re
import types

requested = []


class Response:
    def __init__(self, url, payload):
        self.url = url
        self.status_code = 200
        self.ok = True
        self.text = json.dumps(payload)
        self.content = self.text.encode()
        self.headers = {"Content-Type": "application/json"}

    def json(self):
        return json.loads(self.text)

    def raise_for_status(self):
        pass


def stub_get(url, *args, **kwargs):
    """Answers for the last number in the URL or the parameters: /users/42, ?id=42, params={"id": 42}."""
    params = kwargs.get("params") or {}
    requested.append((url, params))
    numbers = re.findall(r"\d+", str(url) + " " + " ".join(map(str, dict(params).values())))
    user_id = int(numbers[-1]) if numbers else 0
    return Response(url, {"id": user_id, "name": "User %d" % user_id})


def stub_modules():
    requests = types.ModuleType("requests")
    requests.get = stub_get
    requests.Response = Response
    requests.RequestException = requests.HTTPError = requests.ConnectionError = type("RequestException", (IOError,), {})
    requests.exceptions = types.SimpleNamespace(RequestException=requests.RequestException,
                                                HTTPError=requests.HTTPError, ConnectionError=requests.ConnectionError)
    return {"requests": requests}


def check(candidate):
    for user_id in (42, 7):
        result = candidate(user_id)
        url, params = requested[-1]
        assert str(user_id) in str(url) + " " + " ".join(map(str, dict(params).values())), url
        assert result == {"id": user_id, "name": "User %d" % user_id}, result
