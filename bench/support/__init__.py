"""What the benches and the tests share: real servers on 127.0.0.1, and the helpers that start and stop
them."""
