int dummy_test_placeholder;
