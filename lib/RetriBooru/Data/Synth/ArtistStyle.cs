using SkiaSharp;

namespace RetriBooru.Data.Synth;

/// <summary>
/// A drawing style ("artist"): how lines, shading and proportions look, independently of who is drawn.
/// Hues are never changed, so colour attributes keep their meaning across artists.
/// </summary>
public sealed record ArtistStyle(
    string Name, float OutlinePx, SKColor? OutlineColor, bool Shading, float EyeScale, float HeadScale, float JitterUnits, bool Blush)
{
    public static ArtistStyle For(string name) => name switch
    {
        "inkline" => new(name, 1.0f, new SKColor(20, 20, 24), false, 1.0f, 1.0f, 0f, false),
        "softcel" => new(name, 0.8f, null, true, 1.0f, 1.0f, 0f, true),
        "flatpop" => new(name, 1.3f, new SKColor(0, 0, 0), false, 1.1f, 0.95f, 0f, false),
        "sketchy" => new(name, 0.9f, new SKColor(90, 90, 90), false, 1.0f, 1.0f, 1.6f, false),
        "bigeyes" => new(name, 0.8f, new SKColor(30, 24, 30), false, 1.35f, 1.12f, 0f, true),
        "noline" => new(name, 0f, null, true, 1.05f, 1.0f, 0f, false),
        _ => throw new ArgumentException($"unknown artist '{name}'; known: {string.Join(", ", SynthVocabulary.Artists)}"),
    };
}
