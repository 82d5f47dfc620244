"""Need-to-know delivery: each agency reads its own referral topic, copies dropped by id."""
