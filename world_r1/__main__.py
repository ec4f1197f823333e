from world_r1.cli import main

if __name__ == "__main__":
    main()
