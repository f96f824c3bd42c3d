namespace RetriBooru.Data.Synth;

/// <summary>
/// Everything about one synthetic image that is not identity: pose, expression, framing, background and style,
/// plus the small whole-image changes that make a near-duplicate (shift in pixels, zoom, brightness).
/// </summary>
public sealed record SynthScene(
    string Pose, string Expression, string Background, string Artist,
    float CenterX, float FeetY, float FigureHeight, float LeanDegrees, bool Flipped, int BackgroundSeed,
    float ShiftXPx = 0, float ShiftYPx = 0, float Zoom = 1, float Brightness = 1)
{
    public string PositionBucket => CenterX < 1 / 3f ? "left" : CenterX < 2 / 3f ? "center" : "right";
    public string ScaleBucket => FigureHeight < 0.62f ? "small" : FigureHeight < 0.76f ? "medium" : "large";

    /// <summary>Draws a scene independently of identity.</summary>
    public static SynthScene Draw(Random random)
    {
        float height = 0.52f + 0.36f * random.NextSingle();
        // Keep the whole figure (about 0.6 of its height wide with arms out) inside the frame.
        float halfWidth = 0.3f * height;
        float centerX = halfWidth + (1 - 2 * halfWidth) * random.NextSingle();
        float feetY = Math.Clamp(height + 0.06f + (0.98f - height - 0.06f) * random.NextSingle(), height + 0.06f, 0.98f);
        return new SynthScene(
            Pose: Pick(random, SynthVocabulary.Poses),
            Expression: Pick(random, SynthVocabulary.Expressions),
            Background: Pick(random, SynthVocabulary.Backgrounds),
            Artist: Pick(random, SynthVocabulary.Artists),
            CenterX: centerX, FeetY: feetY, FigureHeight: height,
            LeanDegrees: -8 + 16 * random.NextSingle(),
            Flipped: random.Next(2) == 1,
            BackgroundSeed: random.Next());
    }

    static T Pick<T>(Random random, IReadOnlyList<T> list) => list[random.Next(list.Count)];
}
