"""``python -m trioproxy.main``: the reference's ``python -m jhsingle_native_proxy.main`` spelling."""

from trioproxy.cli import main

if __name__ == "__main__":
    main()
