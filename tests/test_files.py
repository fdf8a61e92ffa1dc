import os
import time

import pytest

from torchbearer_vae.files import (
    BackgroundWriter,
    atomic_write,
    bytes_writer,
    remove_stale_temporaries,
    wait_for_writers,
)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / 'file.txt'
    target.write_text('old')

    def fail(tmp_path_):
        with open(tmp_path_, 'w') as file:
            file.write('half')
        raise OSError('disk full')

    with pytest.raises(OSError, match='disk full'):
        atomic_write(target, fail)
    assert target.read_text() == 'old' and os.listdir(tmp_path) == ['file.txt']


def test_the_temporary_keeps_the_extension_and_only_stale_temporaries_are_removed(tmp_path):
    seen = []
    atomic_write(tmp_path / 'sub' / 'picture.png', lambda path: seen.append(path) or open(path, 'w').close())
    assert seen[0].endswith('.tmp.png') and os.path.basename(seen[0]).startswith('.picture.')
    stale = os.path.join(tmp_path, 'sub', os.path.basename(seen[0]))
    open(stale, 'w').close()  # as a kill between write and rename would leave it
    open(tmp_path / 'sub' / '.keep', 'w').close()
    assert remove_stale_temporaries(tmp_path / 'sub') == 1
    assert sorted(os.listdir(tmp_path / 'sub')) == ['.keep', 'picture.png']


def test_background_writes_keep_their_order_and_are_done_after_waiting(tmp_path):
    finished = []

    def slow(name, seconds):
        def write(tmp_path_):
            time.sleep(seconds)
            with open(tmp_path_, 'w') as file:
                file.write(name)
            finished.append(name)
        return write

    writer = BackgroundWriter()
    writer.write(tmp_path / 'checkpoint.pt', slow('checkpoint', 0.2), owner='checkpointer')  # slower, handed first
    writer.write(tmp_path / 'metrics.csv', slow('csv', 0.0), owner='csv')
    assert finished == []  # the caller did not wait
    writer.wait()
    assert finished == ['checkpoint', 'csv']
    assert (tmp_path / 'checkpoint.pt').read_text() == 'checkpoint' and sorted(os.listdir(tmp_path)) == [
        'checkpoint.pt', 'metrics.csv']


def test_a_background_error_is_raised_once_to_its_owner_naming_the_file_and_keeps_the_old_file(tmp_path):
    target = tmp_path / 'file.txt'
    target.write_text('old')

    def fail(tmp_path_):
        raise OSError(28, 'No space left on device')

    writer, owner, other = BackgroundWriter(), object(), object()
    writer.write(target, fail, owner=owner)
    writer.wait(owner=other)  # another callback is not blamed for it
    with pytest.raises(OSError, match=r'could not write .*file\.txt: No space left on device') as raised:
        writer.wait(owner=owner)
    assert raised.value.errno == 28
    writer.wait(owner=owner)  # raised once
    assert target.read_text() == 'old' and os.listdir(tmp_path) == ['file.txt']
    writer.write(target, bytes_writer(b'new'), owner=owner)
    writer.wait(owner=owner)
    assert target.read_bytes() == b'new'


def test_one_writer_per_run_and_an_idle_writer_holds_no_thread(tmp_path):
    import threading

    state = {}
    writer = BackgroundWriter.of_run(state)
    assert BackgroundWriter.of_run(state) is writer and BackgroundWriter.of_run({}) is not writer
    writer.write(tmp_path / 'b.csv', bytes_writer(b'rows'))
    writer.wait()
    assert (tmp_path / 'b.csv').read_bytes() == b'rows'
    assert not [t for t in threading.enumerate() if t.name == 'torchbearer_vae file writer']


def test_waiting_for_the_writers_waits_for_their_files_and_not_for_the_processs_other_threads(tmp_path):
    # torch.compile starts a concurrent.futures pool whose non-daemon workers live until the interpreter exits: the
    # command once joined every non-daemon thread at its end, and waited 120 s for each of them.
    import threading
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1)
    pool.submit(lambda: None).result()  # its worker stays alive, waiting for work
    writer, release = BackgroundWriter(), threading.Event()

    def slow(tmp_path_):
        release.wait(timeout=30)
        with open(tmp_path_, 'w') as file:
            file.write('done')
    writer.write(tmp_path / 'slow.txt', slow)
    waiter = threading.Thread(target=wait_for_writers, daemon=True)
    try:
        waiter.start()
        waiter.join(timeout=0.3)
        assert waiter.is_alive()  # the writer's file is not written yet
        release.set()
        waiter.join(timeout=30)
        assert not waiter.is_alive(), 'wait_for_writers waited for a thread that is not a writer'
        assert (tmp_path / 'slow.txt').read_text() == 'done'
    finally:
        release.set()
        pool.shutdown()


def test_a_foreground_write_happens_before_returning_after_the_earlier_writes(tmp_path):
    writer, order = BackgroundWriter(), []

    def slow(tmp_path_):
        time.sleep(0.1)
        order.append('background')
        open(tmp_path_, 'w').close()

    writer.write(tmp_path / 'first.txt', slow)
    writer.write(tmp_path / 'file.txt', lambda p: order.append('now') or open(p, 'w').close(), background=False)
    assert order == ['background', 'now'] and (tmp_path / 'file.txt').exists()
