"""The offline engine: the real program under Pulumi's unit-test mocks, captured for policies and reports."""
