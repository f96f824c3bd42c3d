namespace RetriBooru.Settings;

/// <summary>
/// Marks a field of a settings record as a user-facing setting: its JSON name (from <c>JsonPropertyName</c>) is the
/// spec path's last part and, in kebab case, the CLI flag; <see cref="Help"/> is the one help text both show.
/// Numeric fields name their allowed range; validation reads it from here.
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class SettingAttribute(string help) : Attribute
{
    public string Help => help;
    public double Min { get; set; } = double.NegativeInfinity;
    public double Max { get; set; } = double.PositiveInfinity;
    /// <summary>Why a spec-only field has no CLI flag on the verb that binds the record (null: it has one).</summary>
    public string? SpecOnly { get; set; }
}
