from tiptrust.cli import main

main()
