from mlops_cli.cli import main

main()
