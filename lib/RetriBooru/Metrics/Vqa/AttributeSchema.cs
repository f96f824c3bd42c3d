namespace RetriBooru.Metrics.Vqa;

/// <summary>
/// One attribute the probe predicts: its name (also the id of the VQA question it answers) and its closed
/// vocabulary of answer words. <see cref="Tags"/> optionally gives, per value, the prompt tag that asks for it
/// (e.g. value "red" -> tag "red_hair"); by default the value itself is the tag.
/// </summary>
public sealed record AttributeSpec(string Name, IReadOnlyList<string> Values, IReadOnlyDictionary<string, string>? Tags = null)
{
    public string TagOf(string value) => Tags is not null && Tags.TryGetValue(value, out var tag) ? tag : value;

    public int IndexOf(string value)
    {
        for (int i = 0; i < Values.Count; i++)
            if (string.Equals(Values[i], value, StringComparison.OrdinalIgnoreCase)) return i;
        return -1;
    }
}

/// <summary>The attributes a probe is trained on, in a fixed order (one classification head each).</summary>
public sealed record AttributeSchema(IReadOnlyList<AttributeSpec> Attributes)
{
    public AttributeSpec this[string name] =>
        Attributes.FirstOrDefault(a => a.Name == name) ?? throw new KeyNotFoundException($"attribute '{name}' is not in the schema ({string.Join(", ", Attributes.Select(a => a.Name))})");

    public void Validate()
    {
        if (Attributes.Count == 0) throw new ArgumentException("an attribute schema needs at least one attribute");
        foreach (var group in Attributes.GroupBy(a => a.Name))
            if (group.Count() > 1) throw new ArgumentException($"attribute '{group.Key}' appears twice in the schema");
        foreach (var a in Attributes)
        {
            if (a.Values.Count < 2) throw new ArgumentException($"attribute '{a.Name}' needs at least two values, has {a.Values.Count}");
            if (a.Values.Distinct(StringComparer.OrdinalIgnoreCase).Count() != a.Values.Count) throw new ArgumentException($"attribute '{a.Name}' lists a value twice");
        }
    }
}
