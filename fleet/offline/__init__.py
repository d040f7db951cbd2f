"""The offline layer: the program under Pulumi's mocks, schema validation, the policy pack, the plan, its
reports and diffs. It sits on top of the domain (fleet.spec, fleet.render, …), components/ and policies/."""
