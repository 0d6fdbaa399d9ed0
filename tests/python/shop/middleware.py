import os


def worker_pid(get_response):
    """Says which worker process answered (blocks included: it sits outside aiwaf)."""

    def middleware(request):
        response = get_response(request)
        response["X-Worker-Pid"] = str(os.getpid())
        return response

    return middleware
