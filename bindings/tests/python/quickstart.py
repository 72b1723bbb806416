# Quickstart of the Python SDK (the wheel `tacit-sdk`, module `tacit`): the app's view,
# run against a real gateway from a fresh venv by bindings/run-tests.sh (step
# python-wheel); README.md shows the same lines. `readings` stand in for a sensor feed.
import asyncio, base64, os, secrets, tempfile
import tacit

async def quickstart(readings):
    client = tacit.TacitClient(tacit.TacitConfig(
        backend_url=os.environ["TACIT_URL"],
        backend_public_key=base64.b64decode(os.environ["TACIT_PUBLIC_KEY"]),
        backend_key_id=os.environ["TACIT_KEY_ID"],
        data_dir=tempfile.mkdtemp(), user_id=os.environ["TACIT_USER"],
        upload=tacit.default_upload_settings()), None)
    try:
        await client.register_device(os.environ["TACIT_TOKEN"])
        client.record_motion(readings)  # Unix-epoch ns, m/s² with gravity, rad/s
        nonce = secrets.token_urlsafe(24)  # in an app: issued by your server
        result = await client.authenticate(include_fresh=True, nonce=nonce)
        return f"decision: {result.decision.name}, verdict for your server: {len(result.verdict)} chars"
    except (tacit.TacitError.Network, tacit.TacitError.RateLimited) as e:
        return f"retry later: {e}"
    except (tacit.TacitError.DeviceRevoked, tacit.TacitError.UnknownDevice) as e:
        return f"ask for a new enrolment token: {e}"

if __name__ == "__main__":
    import math, time
    t0 = time.time_ns() - 40 * 10**9
    walk = [tacit.MotionReading(timestamp_ns=t0 + i * 20_000_000, gyro=None, accel=tacit.Vector3(
        x=0.3 * math.sin(i / 9), y=0.2, z=9.81 + 2.5 * math.sin(2 * math.pi * 1.8 * i / 50)))
        for i in range(1500)]
    print(asyncio.run(quickstart(walk)))
