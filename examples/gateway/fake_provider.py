"""A fake image and video provider that stands in for a real one.

Images come back at once with the size asked for. A video job runs in a
background thread: it starts after a short delay, then finishes with a
duration close to the one asked for, or fails now and then. Every choice is
drawn from a random generator seeded with (seed, request_id), so a run with
the same seed and the same requests makes the same choices, whatever order
the threads run in.
"""
import random
import threading
import time
from decimal import Decimal


class FakeProvider:
    def __init__(self, seed=0, video_seconds=2.0, failure_rate=0.2):
        self.seed = seed
        self.video_seconds = video_seconds
        self.failure_rate = failure_rate

    def _rng(self, request_id):
        return random.Random(f"{self.seed}/{request_id}")

    def images(self, request_id, params):
        """The images of a request: n of them, each of the requested size."""
        width, height = (int(side) for side in str(params.get("size", "1024x1024")).split("x"))
        return [{"url": f"/files/img_{request_id}_{i}.png", "width": width, "height": height}
                for i in range(int(params.get("n", 1)))]

    def start_video(self, request_id, params, started, finished):
        """Runs a video job in the background.

        started(routing) is called when the provider picks the job up;
        finished(outputs, routing) when it is done, with outputs None when it
        failed. Both are called from the job's thread.
        """
        rng = self._rng(request_id)
        delay = self.video_seconds * (0.5 + rng.random() / 2)
        fails = rng.random() < self.failure_rate
        outputs = {k: params[k] for k in ("resolution", "audio") if k in params}
        if "duration_seconds" in params:
            # 0 to 0.5 s shorter than asked: the provider trims the last frames
            trimmed = Decimal(str(params["duration_seconds"])) - Decimal(rng.randint(0, 5)) / 10
            outputs["duration_seconds"] = max(trimmed, Decimal("0.1"))
        routing = {"upstream_id": f"up_vid_{request_id}"}

        def run():
            time.sleep(delay / 3)
            started(routing)
            time.sleep(delay * 2 / 3)
            finished(None if fails else outputs, routing)

        threading.Thread(target=run, daemon=True).start()

    def video_file(self, request_id):
        """The bytes of a finished video: a stand-in, the same every time."""
        return b"\x00\x00\x00\x18ftypmp42" + f"fake video {request_id}\n".encode()
